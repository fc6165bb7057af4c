"""Data stage: load (CSV, image folder, built-in), profile, clean, encode, split. Never imports TensorFlow."""
