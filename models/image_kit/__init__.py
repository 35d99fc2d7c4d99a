"""The image kit: what the image domains share, registering nothing of its own.

- ``vq``: the VQ tokenizer (28x28 digits -> a 7x7 grid of codes); ``network`` / ``objective``: the
  class-conditional AR transformer over that grid and its loss and KV-cache sampler;
- ``pipeline``: the token-image pipelines and their output record, label checks;
- ``classifier``, ``metrics``, ``evaluate``: the digit classifier and the image metrics built on it
  (cls-FID, precision / recall, class accuracy), and batched generation for them.

image_ar registers the models built from these; distilled_decoding, xar and meshcraft import them.
Domains import from here, never from each other (tests/models/test_kits.py states the allowed edges).
"""
