"""Region Tracker (paper, section 5): selective-search proposals, res4 feature tracking, and the
tracks format shared with ground-truth tracks (GOT-10k / TrackingNet annotations)."""
