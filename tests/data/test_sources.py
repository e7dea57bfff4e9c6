"""Text sources, the default corpus and source collection: fast, no encoder involved."""

from __future__ import annotations

import json

import pytest

from cmcr import InputError
from cmcr.data.corpus import OBJECTS, SHAPES, SOUND_EVENTS, default_corpus
from cmcr.data.sources import collect_sources, read_text_file, scan_media


def test_corpus_is_deterministic_distinct_and_covers_every_label():
    corpus = default_corpus()
    assert corpus == default_corpus() and len(corpus) == len(set(corpus)) == 3000
    assert default_corpus(500, seed=1) != default_corpus(500, seed=2)
    text = " ".join(corpus).lower()
    missing = [label for label in (*SOUND_EVENTS, *OBJECTS, *SHAPES) if label.lower() not in text]
    assert not missing
    assert not [s for s in corpus if " a a" in s.lower() or " a airplane" in s.lower()]
    with pytest.raises(InputError, match="positive"):
        default_corpus(0)


@pytest.mark.parametrize("name, content", [
    ("lines.txt", "a dog barking\n\n  a   dog barking \nrain on a roof\n"),
    ("records.jsonl", '{"text": "a dog barking"}\n\n{"text": "a dog barking"}\n{"text": "rain on a roof", "x": 1}\n'),
    ("table.csv", "id,text\n1,a dog barking\n2,a dog barking\n3,rain on a roof\n"),
])
def test_text_files_of_every_kind_give_the_same_texts(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    items = read_text_file(path)
    assert [item["text"] for item in items] == ["a dog barking", "rain on a roof"]
    assert len({item["id"] for item in items}) == 2 and all(item["id"].startswith(name) for item in items)


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", '{"text": "fine"}\nnot json\n', "line 2 is not JSON"),
    ("bad2.jsonl", '{"caption": "no text"}\n', "no string 'text' field"),
    ("bad.csv", "caption\nhello\n", "no 'text' column"),
    ("empty.txt", "\n\n", "holds no text"),
    ("words.docx", "hello", "must be .txt"),
])
def test_bad_text_files_are_refused_with_a_reason(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_text_file(path)


def test_csv_text_column_is_configurable(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text('file,caption\na.wav,"a bell, ringing"\n')
    assert read_text_file(path, column="caption")[0]["text"] == "a bell, ringing"


def test_media_folders_are_scanned_recursively_by_extension(sources):
    images = scan_media(sources["images"], "image")
    ids = [item["id"] for item in images]
    assert ids == sorted(ids) and "nested/bell.png" in ids and "broken.png" in ids
    assert not [i for i in ids if i.endswith(".md")]
    assert all(item["size"] > 0 for item in images)
    with pytest.raises(InputError, match="holds no audio files"):
        scan_media(sources["images"], "audio")
    with pytest.raises(InputError, match="is not a folder"):
        scan_media(sources["images"] / "missing", "image")


def test_collect_sources_describes_each_modality(sources):
    collected = collect_sources(text=[sources["text"]], texts=["one", "two"], images=sources["images"])
    assert collected.modalities == ["text", "image"]
    assert len(collected.items["text"]) == 8 + 2
    assert "default corpus" in collected.described["text"]
    json.dumps(collected.items)  # plain data: it goes into the plan fingerprint
    with pytest.raises(InputError, match="nothing to extract"):
        collect_sources()
