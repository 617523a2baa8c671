# Two commands do all set-up on a fresh machine (Python 3.11, package registries only):
#   make book   create .venv, install, build the book into _build/html (cached)
#   make test   create .venv, install (and, as root, the Debian packages the tests use),
#               build the book strictly from scratch, run every test
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
JB_FLAGS_STRICT := -W -n --keep-going

.PHONY: setup system-deps corpora mathjax book serve book-strict test release student-kit publish clean
.DEFAULT_GOAL := book

# rfc3987-syntax (asked for by jupyter-events through jsonschema[format-nongpl]) builds a
# parser when jsonschema is imported: 2 s of every command that imports nbformat (grade,
# stats, nbgrader). Nothing of the course validates IRIs: it is removed after the install.
$(BIN)/.installed: requirements.txt pyproject.toml kit/pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip uninstall --disable-pip-version-check -q -y rfc3987-syntax lark
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e kit -e .
	touch $@

setup: $(BIN)/.installed

# MathJax 3 for equations without internet: npm package mathjax@3.2.2 (sha512-checked)
# into _vendor/, which is never committed.
mathjax:
	$(PYTHON) scripts/vendor_mathjax.py

book: setup mathjax corpora student-kit
	$(BIN)/jupyter-book build . --path-output .
	@echo "open _build/html/index.html, or: make serve"

serve: book
	$(BIN)/python -m http.server --directory _build/html 8000

book-strict: setup mathjax corpora student-kit
	rm -rf _build
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter-book build . --path-output . $(JB_FLAGS_STRICT)

system-deps:
	bash scripts/system-deps.sh

# Chapter 5 reads the Tang poems of Debian's fortunes-zh at build time and draws them with
# fonts-noto-cjk: installed when missing and we are root, otherwise the command is printed.
corpora:
	@bash scripts/system-deps.sh fortunes-zh fonts-noto-cjk

# One pytest process per grading worker (cores + 1), all grading; an xdist group keeps
# together only the tests that share a graded class (see pyproject.toml).
# publish after book-strict: the public edition reuses its executed notebooks, and
# tests/test_publish.py scans dist/public.
test: system-deps book-strict publish
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

release: setup
	$(BIN)/python -m autograder release

# What students install: dist/student-kit.zip (the rnnkit wheel with exercise 5's corpora,
# the exercises, the students' README).
student-kit: setup corpora
	$(BIN)/python -m autograder.studentkit

# Everything students may see, and nothing else, in dist/public/: site/ (the book without
# the instructors' page), student-kit.zip, repo/ (the students' repository to push).
# publish/workflow.yml runs it on CI. Reuses the notebooks `make book` executed.
publish: setup mathjax corpora
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m autograder.publish

clean:
	rm -rf _build _vendor course dist
