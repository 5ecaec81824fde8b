# The course's two commands:   make course   (run everything)   and   make test   (run the tests).
# Both set up .venv first; set-up is skipped when pyproject.toml and constraints.txt have not changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= build

.PHONY: setup course test lab data lock clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

course: setup                   ## generate data, execute every notebook, collect records under $(OUT)/
	$(PY) -m course_lib.course_runner --out $(OUT)

test: setup                     ## the whole test suite (.ci/run calls exactly this)
	$(PY) -m pytest

lab: setup                      ## open JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab notebooks

data: setup                     ## only generate the default dataset
	$(PY) -m data_gen generate --out $(OUT)/data

bench: setup                    ## loader benchmark on the default dataset (figures, not a test)
	$(PY) -m course_lib.bench --data $(OUT)/data --out $(OUT)/bench.json

lock: setup                     ## re-pin constraints.txt from the current .venv
	{ head -n 2 constraints.txt; $(PY) -m pip freeze --exclude-editable | sed 's/+cpu//'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(OUT)
