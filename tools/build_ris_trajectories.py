#!/usr/bin/env python
"""Write a RIS manifest (image, optional box, trajectory, class) from a dataset's native layout.

    python tools/build_ris_trajectories.py aloi /data/aloi_red4_view/png4 --out /data/ris/aloi_viewpoint.json
    python tools/build_ris_trajectories.py got10k /data/GOT-10k/train --out /data/ris/got10k_occlusion.json
    python tools/build_ris_trajectories.py pascal3d /data/PASCAL3D+_release1.1 --invariance instance --out ...
    python tools/build_ris_trajectories.py folders /data/my_trajectories --invariance deformation --out ...
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vissl_ext.invariance.cli import build_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(build_main())
