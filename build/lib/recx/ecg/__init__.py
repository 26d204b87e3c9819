"""ECG representation learning (HeartLang): WFDB records, the QRS tokenizer (heartbeats as words), generated ECGs.

:mod:`~recx.ecg.wfdb` (header + signal reader, formats 16/212/80), :mod:`~recx.ecg.qrs` (filtering, resampling,
R-peak detection, beat tokens), :mod:`~recx.ecg.synthetic` (multi-lead ECGs with known beats and rhythm labels).
"""
