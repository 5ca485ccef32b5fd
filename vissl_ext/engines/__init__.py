"""Running VISSL: our launcher, its checks before any worker starts, and the quiet console."""
