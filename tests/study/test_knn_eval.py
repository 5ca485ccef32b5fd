"""The study's kNN split: memory poses every `stride`, queries half a stride away, frames in pose
order (numbered names sort by number, not as strings), and user errors named."""
import pytest

from vissl_ext.study.knn_eval import main, object_frames, pose_split


def test_pose_split():
    assert pose_split(24, 6) == ([0, 6, 12, 18], [3, 9, 15, 21])
    assert pose_split(6, 2) == ([0, 2, 4], [1, 3, 5])
    with pytest.raises(ValueError, match="stride must be >= 2"):
        pose_split(24, 1)


def test_object_frames_in_pose_order(tmp_path):
    from PIL import Image

    for obj in ("a", "b"):
        (tmp_path / obj).mkdir()
        for p in (0, 2, 10, 1):
            Image.new("RGB", (8, 8)).save(tmp_path / obj / f"{p}.png")
    objs = object_frames(str(tmp_path))
    assert [o for o, _ in objs] == ["a", "b"]
    assert [f.rsplit("/", 1)[1] for f in objs[0][1]] == ["0.png", "1.png", "2.png", "10.png"]


def test_user_errors(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "no.torch"), "--data", str(tmp_path), "--config", "x",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no.torch does not exist" in capsys.readouterr().err
