# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
HOST   ?= 127.0.0.1
PORT   ?= 8000
DEMO_CONTACTS ?= 2000
CHROMIUM ?= /usr/bin/chromium
# Without WECOM_CORP_ID, `make run` talks to the local WeCom stand-in (a simulation, said so on every WeCom page).
WECOM_STANDIN_PORT ?= 8001
WECOM_SIMULATION_ENV = WECOM_SIMULATION=1 WECOM_API_BASE=http://127.0.0.1:$(WECOM_STANDIN_PORT)/cgi-bin \
  WECOM_CORP_ID=ww-simulation WECOM_CORP_SECRET=simulation-secret WECOM_CALLBACK_TOKEN=simulation-token \
  WECOM_ENCODING_AES_KEY=c2ltdWxhdGlvbi1rZXktZm9yLXRoZS1zdGFuZC1pbi0

.PHONY: run test install browser lint format messages bench clean

$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

install: $(BIN)/.installed

## make run: migrate, load demo data, start web + Celery worker + beat (embedded: SQLite, filesystem broker).
run: install
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo --contacts $(DEMO_CONTACTS) --if-empty
	@echo ""
	@echo "  SCRM is starting on  http://$(HOST):$(PORT)/"
	@echo "  Demo logins:         manager / demo-manager   (sees everything)"
	@echo "                       operator / demo-operator (sees own contacts)"
	@echo "  API docs:            http://$(HOST):$(PORT)/api/docs/"
	@echo "  Stop with Ctrl-C."
	@echo ""
	@# Every service runs in the background and the shell waits for the web server. Ctrl-C (SIGINT to the
	@# whole foreground group) or SIGTERM runs `stop` once: SIGTERM to each service (Celery: warm shutdown),
	@# SIGQUIT to the workers after 3 s (cold shutdown: running tasks are cut, the ledger retries them),
	@# SIGKILL to what is left after 5 s; then the shell exits 0 (make itself ends with 130 after Ctrl-C).
	@# The trap ignores further signals while it stops, so a second Ctrl-C cannot re-enter it.
	@export DEBUG=$${DEBUG:-1}; \
	  pids=""; workers=""; \
	  stop() { \
	    trap '' INT TERM; trap - EXIT; \
	    echo ""; echo "  Stopping the web server, workers, beat and the WeCom stand-in ..."; \
	    kill -TERM $$pids 2>/dev/null; \
	    tick=0; \
	    while [ $$tick -lt 60 ]; do \
	      alive=""; for pid in $$pids; do kill -0 $$pid 2>/dev/null && alive="$$alive $$pid"; done; \
	      [ -z "$$alive" ] && break; \
	      [ $$tick -eq 30 ] && kill -QUIT $$workers 2>/dev/null; \
	      if [ $$tick -eq 50 ]; then \
	        for pid in $$workers; do pkill -KILL -P $$pid 2>/dev/null; done; kill -KILL $$alive 2>/dev/null; \
	      fi; \
	      sleep 0.1; tick=$$((tick + 1)); \
	    done; \
	    wait 2>/dev/null; \
	    echo "  Stopped."; \
	  }; \
	  trap 'stop; exit 0' INT TERM; \
	  trap 'stop' EXIT; \
	  if [ -z "$$WECOM_CORP_ID" ]; then \
	    echo "  WeCom:               simulated by the local stand-in on port $(WECOM_STANDIN_PORT) (set WECOM_* for a real corp)"; \
	    export $(WECOM_SIMULATION_ENV); \
	    $(MANAGE) wecom_standin --port $(WECOM_STANDIN_PORT) & pids="$$pids $$!"; \
	  fi; \
	  $(BIN)/celery -A scrm worker --loglevel=INFO --concurrency=2 -Q default,wecom -n default@%h & \
	    pids="$$pids $$!"; workers="$$workers $$!"; \
	  $(BIN)/celery -A scrm worker --loglevel=INFO --concurrency=1 -Q wecom -n wecom@%h & \
	    pids="$$pids $$!"; workers="$$workers $$!"; \
	  $(BIN)/celery -A scrm beat --loglevel=INFO & pids="$$pids $$!"; \
	  $(MANAGE) runserver $(HOST):$(PORT) & web=$$!; pids="$$pids $$web"; \
	  wait $$web; status=$$?; \
	  stop; exit $$status

## make test: the whole suite. SQLite by default; PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set.
test: install browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

# Browser tests drive Debian's Chromium (a tool's own browser download does not work here).
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing Chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || exit 1; \
	  else \
	    echo "Browser tests need Chromium at $(CHROMIUM): sudo apt-get install chromium"; exit 1; \
	  fi; \
	fi

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

## make messages: refresh and compile the zh-hans / en translation catalogues.
messages: install
	$(MANAGE) makemessages -l zh_Hans -l en --ignore=.venv --ignore=var --ignore=bench
	$(MANAGE) compilemessages --ignore=.venv

clean:
	rm -rf var/broker var/scrm.sqlite3*
