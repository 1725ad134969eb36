"""Training and evaluation of the detector (uses the engine's own chip, backbone and LSTM code)."""
