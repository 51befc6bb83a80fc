"""``python -m medseg`` and ``torchrun ... -m medseg`` entry point."""

from medseg.cli import main

if __name__ == "__main__":
    main()
