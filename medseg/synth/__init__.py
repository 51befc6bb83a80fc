"""Synthetic scans with known truth, written as real DICOM / NIfTI / PNG files.

Used by the tests and the demo: medseg never downloads data. See :func:`medseg.synth.api.synth_ct`
and :func:`medseg.synth.api.synth_oct`.
"""
