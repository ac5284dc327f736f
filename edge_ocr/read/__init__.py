"""Read: crop preparation, the CRNN recogniser, CTC decoding, plate formats and the plate reader."""
