"""distilled_decoding: one-step students of an image AR model via flow matching (Distilled Decoding 1).

In progress: the noise-to-token flow map (flow_map.py). The tokenizer, teacher, pair generator and
students come with the rest of the issue.
"""
