# make demo: complete a Python prompt with the shipped code models (diffusion, then AR), then draw
# digits with the one-step distilled student, with its 49-step AR teacher and with xAR (4 cells, flow
# matching each; PNG grids in outputs/demo),
# then four 200-face chairs with MeshCraft (.obj/.glb/.ply and a PNG in outputs/demo/meshes); then one
# English prompt continued sentence by sentence by SentenceVAE's sentence LM, and token by token by its
# token-level baseline (same temperature); then one closed-loop highway-env episode driven by the
# ViLaD planner (a GIF and a PNG strip with its plans drawn, outputs/demo/driving); then one page that
# shows them all, outputs/demo/index.html (recipes/gallery.py).
# make test: the fast tests (a few minutes); make test-slow: the ones that train or start processes
# (marked slow); .ci/run runs both. Each creates (or reuses) .venv at the repo root first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow install clean

PROSE_PROMPT := 'Open the file and return a stream. Raise an error if it does not exist.'

install: $(STAMP)

# Reinstalled when pyproject.toml changes. On this project's machines pip takes torch 2.14.1 and
# torchvision 0.29.1 from local files; elsewhere it resolves the lower bounds in pyproject.toml.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The masked-diffusion code model (adapted from the AR one, fine-tuned on function bodies), then its
# equal-size autoregressive twin (the same fine-tuning) on the same prompt.
demo: $(STAMP)
	$(PY) recipes/sample.py model=dllm_code_adapted-tiny prompt_file=recipes/prompts/fibonacci.py steps=64 +kwargs.gen_length=64 +kwargs.block_length=32 out_dir=outputs/demo/code_diffusion
	$(PY) recipes/sample.py model=ar_code_sft-tiny prompt_file=recipes/prompts/fibonacci.py +kwargs.gen_length=64 out_dir=outputs/demo/code_ar
	$(PY) recipes/sample.py model=distilled_decoding-mnist steps=1 '+kwargs.class_labels=[0,1,2,3,4,5,6,7,8,9]' out_dir=outputs/demo/student
	$(PY) recipes/sample.py model=image_ar-mnist '+kwargs.class_labels=[0,1,2,3,4,5,6,7,8,9]' out_dir=outputs/demo/teacher
	$(PY) recipes/sample.py model=xar-mnist '+kwargs.class_labels=[0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9]' out_dir=outputs/demo/xar
	$(PY) recipes/sample.py model=meshcraft-tiny batch_size=4 +kwargs.num_faces=200 +kwargs.category=chair out_dir=outputs/demo/meshes
	$(PY) recipes/sample.py model=sentence_vae-prose prompt="$(PROSE_PROMPT)" batch_size=3 +kwargs.max_sentences=4 out_dir=outputs/demo/sentences
	$(PY) recipes/sample.py model=token_lm-prose prompt="$(PROSE_PROMPT)" batch_size=3 +kwargs.gen_length=60 +kwargs.temperature=0.7 out_dir=outputs/demo/sentences_token_lm
	$(PY) recipes/sample.py model=vilad-highway +kwargs.scene=roundabout +kwargs.scene_seed=100003 out_dir=outputs/demo/driving
	$(PY) recipes/gallery.py outputs/demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) .cache outputs
