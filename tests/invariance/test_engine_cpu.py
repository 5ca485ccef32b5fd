"""The RIS engine on CPU: progress lines while extracting (from rank 0, on the quiet console)."""
import logging

from vissl_ext.invariance.engine import ExtractionProgress


def test_progress_lines_count_images_and_end_with_the_last_batch(caplog):
    caplog.set_level(logging.INFO)
    p = ExtractionProgress(3, every=3600)  # only the last batch is due
    for n in (4, 4, 2):
        p.step(n)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("features:")]
    assert len(lines) == 1 and lines[0].startswith("features: batch 3/3 (10 images of this rank)")
    assert getattr(caplog.records[-1], "vissl_ext_console", False)  # shown on the quiet console
    caplog.clear()
    quiet = ExtractionProgress(2, enabled=False, every=0)  # ranks > 0
    quiet.step(4)
    quiet.step(4)
    assert not caplog.records
