"""The offline video chain: decoding, frame extraction, manifests, shots, the tracks format.
It never imports VISSL, classy_vision or detectron2 (tests/test_layout.py checks)."""
