import numpy as np
import pytest

from edge_sed.core.audio_io import read_audio
from edge_sed.data.datasets import load_clips
from edge_sed.core.errors import DatasetError
from edge_sed.core.events import read_annotations
from edge_sed.data.streams import make_stream, write_stream


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from edge_sed.data.synth import write_dataset

    return load_clips(
        write_dataset(
            tmp_path_factory.mktemp("s"),
            {"dog": 3, "baby_cry": 3, "gunshot": 3, "background": 6},
            seed=1,
            workers=1,
        )
    )


def test_stream_places_events_where_annotated(clips, tmp_path):
    audio, ann = make_stream(clips, duration_s=30.0, n_events=6, seed=3, ebr_db=6.0, bed_rms=0.03)
    assert audio.dtype == np.float32 and len(audio) == 30 * 16000 and np.abs(audio).max() <= 0.99 + 1e-6
    assert len(ann) == 6 and {a.label for a in ann} == {"dog", "baby_cry", "gunshot"}
    assert all(b.onset_s - a.onset_s >= 3.0 - 1e-3 for a, b in zip(ann, ann[1:]))
    assert ann[0].onset_s >= 2.0
    again, ann2 = make_stream(clips, duration_s=30.0, n_events=6, seed=3, ebr_db=6.0, bed_rms=0.03)
    assert np.array_equal(audio, again) and ann == ann2
    quiet = np.ones(len(audio), bool)
    for a in ann:
        quiet[int((a.onset_s - 0.2) * 16000) : int((a.offset_s + 0.2) * 16000)] = False
    bed_rms = np.sqrt(np.mean(audio[quiet] ** 2))
    for a in ann:  # at +6 dB (less for an impulse near full scale) the event span is louder than the bed
        s = slice(int(a.onset_s * 16000), int(a.offset_s * 16000))
        assert np.sqrt(np.mean(audio[s] ** 2)) > 1.4 * bed_rms
    # the bed is the same stream without events; outside the events (+- the 0.1 s pad) nothing changed
    bed, none = make_stream(clips, duration_s=30.0, n_events=0, seed=3, bed_rms=0.03)
    assert none == [] and np.array_equal(audio[quiet], bed[quiet])
    added = audio - bed
    for a in ann:  # synthetic clips give their isolated event: the added signal starts near the onset
        before = added[int((a.onset_s - 0.09) * 16000) : int((a.onset_s - 0.01) * 16000)]
        during = added[int(a.onset_s * 16000) : int(a.offset_s * 16000)]
        assert np.sqrt(np.mean(before**2)) < 0.05 * np.sqrt(np.mean(during**2))
    csv_path = write_stream(tmp_path / "s.wav", audio, ann)
    assert read_annotations(csv_path) == ann
    assert np.allclose(read_audio(tmp_path / "s.wav"), audio, atol=1e-4)


def test_stream_errors(clips):
    with pytest.raises(DatasetError, match="do not fit"):
        make_stream(clips, duration_s=10.0, n_events=5)
    with pytest.raises(DatasetError, match="background"):
        make_stream([c for c in clips if c.label != "background"], duration_s=30.0, n_events=2)
