# Makefile: the one, non-recursive build of molecule.
# Binaries land in build/ (or build-san/ with SANITIZE=...); nothing is written elsewhere.
# Two knobs only: SANITIZE=address,undefined and DEBUG=1.

.DEFAULT_GOAL := all
SHELL := /bin/bash

SANITIZE ?=
DEBUG ?=
ifeq ($(SANITIZE),)
B ?= build
else
B ?= build-san
endif

CC ?= cc
PKGS := libpq hiredis json-c libcurl openssl yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lfcgi

CFLAGS := -std=c11 -D_GNU_SOURCE -g -fno-common -fstack-protector-strong
CFLAGS += -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	-Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual \
	-Wwrite-strings -Wformat=2 -Wvla -Wdeclaration-after-statement \
	-Wno-missing-field-initializers
ifeq ($(DEBUG),1)
CFLAGS += -O0
else
CFLAGS += -O2 -D_FORTIFY_SOURCE=2
endif
ifneq ($(SANITIZE),)
CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif
CFLAGS += -I. $(PKG_CFLAGS)
DEPFLAGS = -MMD -MP

COMMON_SRC := $(wildcard common/*.c)
FCGI_SRC := $(wildcard fcgi/*.c)
SUP_SRC := workers/supervisor.c
# Every other workers/<name>.c is its own program, build/molecule-<name>.
WORKER_SRC := $(filter-out $(SUP_SRC),$(wildcard workers/*.c))
WORKER_BINS := $(WORKER_SRC:workers/%.c=$(B)/molecule-%)
UNIT_SRC := $(wildcard tests/unit/t_*.c) tests/unit/main.c

COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/obj/%.o)
FCGI_OBJ := $(FCGI_SRC:%.c=$(B)/obj/%.o)
SUP_OBJ := $(SUP_SRC:%.c=$(B)/obj/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/obj/%.o)
# Unit tests link the API's modules too, except its main().
FCGI_LIB_OBJ := $(filter-out $(B)/obj/fcgi/main.o,$(FCGI_OBJ))

BINS := $(B)/moleculed $(B)/molecule-api $(B)/hello-fcgi $(WORKER_BINS) $(B)/enginectl $(B)/imagectl
ALL_OBJ := $(COMMON_OBJ) $(FCGI_OBJ) $(SUP_OBJ) $(WORKER_SRC:%.c=$(B)/obj/%.o) $(UNIT_OBJ) $(B)/obj/tests/bench/hello_fcgi.o \
	$(B)/obj/tests/tools/enginectl.o $(B)/obj/tests/tools/imagectl.o

.PHONY: all help deps run up down test check integ sanitize-check bench fuzz lint clean

all: $(BINS) ## build every binary into build/

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' Makefile | sed -E 's/:.*## /\t/' | expand -t 18

# Rewritten only when the flags change, so a flag change rebuilds everything.
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@
FORCE:

$(B)/obj/%.o: %.c $(B)/.flags
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# Tests build CGI environments from string literals.
$(UNIT_OBJ): CFLAGS := $(filter-out -Wwrite-strings,$(CFLAGS))

$(B)/moleculed: $(SUP_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/molecule-%: $(B)/obj/workers/%.o $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/molecule-api: $(FCGI_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/hello-fcgi: $(B)/obj/tests/bench/hello_fcgi.o
	$(CC) $(LDFLAGS) -o $@ $^ -lfcgi

# Test driver of the container engine client (tests/integration/test_engine.py); not installed.
$(B)/enginectl: $(B)/obj/tests/tools/enginectl.o $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Test driver of images_ensure (tests/integration/test_images.py); not installed.
$(B)/imagectl: $(B)/obj/tests/tools/imagectl.o $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/unit-tests: $(UNIT_OBJ) $(FCGI_LIB_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

deps: ## install the Debian packages the build, the stack and the tests need (root)
	tests/deps.sh

check: $(B)/unit-tests ## run the C unit tests
	$(B)/unit-tests

integ: all ## run the integration tests against a real stack (current build)
	BIN_DIR=$(abspath $(B)) /usr/bin/python3 -m pytest -q tests/integration

sanitize-check: ## unit + integration tests on the ASan+UBSan build, one summary line
	tests/run.sh

test: ## install what is missing, then unit + integration tests on the sanitizer build
	tests/deps.sh
	tests/run.sh

run: ## run PostgreSQL, Redis, nginx and the supervisor in the foreground (API on :8080)
	tests/deps.sh
	$(MAKE) all
	MOLECULE_ENV=$${MOLECULE_ENV:-development} BIN_DIR=$(abspath $(B)) tests/stack.sh run

up: all ## the same stack in the background
	MOLECULE_ENV=$${MOLECULE_ENV:-development} BIN_DIR=$(abspath $(B)) tests/stack.sh up

down: ## stop the background stack
	tests/stack.sh down

bench: all ## wrk/pgbench benchmarks (tests/bench), numbers into docs/performance.md
	BIN_DIR=$(abspath $(B)) tests/bench/health.sh
	BIN_DIR=$(abspath $(B)) tests/bench/registry.sh
	BIN_DIR=$(abspath $(B)) tests/bench/secrets.sh
	BIN_DIR=$(abspath $(B)) tests/bench/scheduler.sh
	BIN_DIR=$(abspath $(B)) tests/bench/dispatcher.sh
	BIN_DIR=$(abspath $(B)) tests/bench/a2a.sh
	BIN_DIR=$(abspath $(B)) tests/bench/provision.sh

fuzz: ## short libFuzzer sessions for every parser of untrusted bytes
	tests/fuzz/run.sh

lint: ## cppcheck and shellcheck
	# json-c's foreach macro is opaque to cppcheck without its headers.
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--suppress=unknownMacro:fcgi/resp.c -I. common fcgi workers
	shellcheck -x tests/*.sh tests/bench/*.sh tests/fuzz/*.sh .ci/run

clean: ## remove build outputs
	rm -rf build build-san build-fuzz

-include $(ALL_OBJ:.o=.d)
