"""Transforms registered with VISSL/classy."""
from classy_vision.dataset.transforms.classy_transform import ClassyTransform

from vissl_ext.registry import register_transform


@register_transform("VideoFramesToViews", makes_copies=True)
class VideoFramesToViews(ClassyTransform):
    """Turn the frame list of a multi-frame sample into separate views.

    Registered as a copy-making transform, so VISSL's SSLTransformsWrapper flattens
    ``[[z_i, z_{i+k}]]`` into ``[z_i, z_{i+k}]`` (labels and indices replicated) and every later
    transform (crop, colour jitter, blur, flip) draws its own random parameters per frame —
    the place ImgReplicatePil takes in an image MoCo config.
    """

    def __call__(self, frames):
        if not isinstance(frames, (list, tuple)):
            raise TypeError("VideoFramesToViews expects a list of frames; use it with a multi-frame source "
                            "such as video_frame_pairs (for single frames use ImgReplicatePil)")
        return list(frames)

    @classmethod
    def from_config(cls, config):
        return cls()
