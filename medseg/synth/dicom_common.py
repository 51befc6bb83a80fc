"""Shared parts of the synthetic DICOM writers: deterministic UIDs, patient and study modules."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

import medseg

UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root; suffix is a hash of our entropy


def make_uid(*parts: object) -> str:
    """A UID that depends only on ``parts`` (same seed and case -> same UID)."""
    return str(generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(p) for p in parts]))


@dataclass(frozen=True)
class StudyInfo:
    """Identity of a synthetic patient study.

    The patient name and birth date are deliberately filled (fake) so that tests can prove they
    never leak into logs and reports.
    """

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str
    study_time: str = "093000"
    accession: str = ""


def file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    """File meta information for an uncompressed explicit-VR little-endian file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"MEDSEG_{medseg.__version__}"[:16]
    return meta


def base_dataset(
    study: StudyInfo, *, sop_class_uid: str, sop_instance_uid: str, modality: str
) -> Dataset:
    """Dataset with the SOP common, patient, general study and equipment attributes filled."""
    ds = Dataset()
    ds.file_meta = file_meta(sop_class_uid, sop_instance_uid)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = study.sex
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.StudyID = "1"
    ds.AccessionNumber = study.accession
    ds.ReferringPhysicianName = ""
    ds.Modality = modality
    ds.Manufacturer = "medseg synthetic"
    ds.ManufacturerModelName = "medseg.synth"
    ds.SoftwareVersions = medseg.__version__
    ds.ContentDate = study.study_date
    ds.ContentTime = study.study_time
    return ds
