"""The prose corpus: the sentence splitter, the cleaning, and the three views of the same ids."""

import textwrap

import numpy as np
import pytest
import torch

from datamodules.stdlib_code import EOS_ID, PAD_ID
from datamodules.sentences import split_sentences
from datamodules.stdlib_prose import ProseCorpus, ProseView, clean_prose, prose_blocks, split_of, trimmed


def test_splitter_cuts_where_expected_and_loses_nothing():
    text = "Return the value, or None. See os.path.join for 3.14 details!\nA new line: here it is"
    pieces = split_sentences(text)
    assert pieces == ["Return the value,", " or None.", " See os.path.join for 3.14 details!",
                      "\nA new line:", " here it is"]
    assert "".join(pieces) == text


def test_splitter_edge_cases():
    assert split_sentences("") == []
    assert split_sentences("no marks at all") == ["no marks at all"]
    assert split_sentences("Ends here.  ") == ["Ends here.  "]  # trailing whitespace stays with the last piece
    assert split_sentences("a.  b") == ["a.", "  b"]  # a run of whitespace starts the next piece whole
    for text in ["x. y, z; w: v! u? t", "中文，句子。下一句", " lead. in", "a\n\nb"]:
        pieces = split_sentences(text)
        assert "".join(pieces) == text and all(p.strip() for p in pieces)
    assert split_sentences("中文， 句子。") == ["中文，", " 句子。"]


def test_clean_prose_keeps_prose_and_drops_code():
    block = textwrap.dedent("""\
        Return the sum of the values,
        wrapped over two lines.

        >>> add(1, 2)
        3

        Example of use::

            x = add(1, 2)
            print(x)

            An indented note, prose but a literal block.

        {a: [1, 2]} == b -> c

        All done here.""")
    assert clean_prose(block) == ("Return the sum of the values, wrapped over two lines.\nExample of use::\n"
                                  "All done here.")


def test_prose_blocks_in_source_order():
    source = textwrap.dedent('''\
        """Module doc here."""
        # first comment block
        # continues here
        x = 1

        def f():
            """Function doc."""
            # inner comment
            return x
        ''')
    assert prose_blocks(source) == ["Module doc here.", "first comment block\ncontinues here", "Function doc.",
                                    "inner comment"]
    assert prose_blocks("def broken(:\n") == []


def test_split_of_is_a_stable_three_way_split():
    splits = [split_of(f"pkg/mod{i}.py", 100) for i in range(2000)]
    assert {"train", "val", "test"} == set(splits)
    assert 100 < splits.count("val") < 300 and 100 < splits.count("test") < 300
    assert splits == [split_of(f"pkg/mod{i}.py", 100) for i in range(2000)]


def corpus(max_sentence_len=5, max_sentences=2) -> ProseCorpus:
    # two documents: [[7, 8], [9, 10, 11, 12, 13, 14]] and [[20]]; sentence ids without EOS
    sentences = [[7, 8], [9, 10, 11, 12, 13, 14], [20]]
    lengths = [len(s) for s in sentences]
    arrays = {"tokens": np.array([i for s in sentences for i in s], dtype=np.uint16),
              "sentence_offsets": np.concatenate([[0], np.cumsum(lengths)]),
              "document_offsets": np.array([0, 2, 3])}
    return ProseCorpus(arrays, max_sentence_len, max_sentences)


def test_long_sentences_become_pieces_and_long_documents_chunks():
    c = corpus()
    assert [s.tolist() for s in c.sentences] == [[7, 8, EOS_ID], [9, 10, 11, 12, EOS_ID], [13, 14, EOS_ID],
                                                 [20, EOS_ID]]
    assert c.chunks == [(0, 2, False), (2, 1, True), (3, 1, True)]


def test_views_hold_the_same_ids():
    c = corpus()
    docs, toks = ProseView(c, "documents"), ProseView(c, "tokens", sentence_ids=True)
    d, t = docs[0], toks[0]
    assert d["lengths"].tolist() == [3, 5] and not d["ends"]
    assert d["sentences"][1].tolist() == [9, 10, 11, 12, EOS_ID]
    n = int(t["valid"].sum())
    assert t["x1"][:n].tolist() == [EOS_ID, 7, 8, 9, 10, 11, 12]  # start token, then the ids without EOS
    assert t["sentence_id"][:n].tolist() == [-1, 0, 0, 1, 1, 1, 1]
    assert (t["x1"][n:] == PAD_ID).all() and (t["sentence_id"][n:] == -1).all()
    assert "sentence_id" not in ProseView(c, "tokens")[0]  # training batches carry only what the loss takes
    with pytest.raises(ValueError, match="unknown view"):
        ProseView(c, "paragraphs")


def test_trimmed_collate_cuts_shared_padding():
    c = corpus(max_sentence_len=8, max_sentences=4)
    batch = trimmed([ProseView(c, "documents")[i] for i in range(len(c.chunks))])
    assert batch["sentences"].shape == (2, 2, 7) and batch["lengths"].shape == (2, 2)
    sentences = trimmed([ProseView(c, "sentences")[i] for i in (0, 2)])
    assert sentences["tokens"].shape == (2, 3) and sentences["length"].tolist() == [3, 2]
    tokens = trimmed([ProseView(c, "tokens")[i] for i in range(2)])
    assert tokens["x1"].shape == (2, 9) and tokens["valid"].sum().item() == 9 + 2
    assert torch.equal(tokens["x1"][1, :2], torch.tensor([EOS_ID, 20]))
