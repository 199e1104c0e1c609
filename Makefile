# pg_migrate: the two commands a new user needs are `make demo` and `make test`.
# Both install whatever is missing first (scripts/setup.sh).

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
DEMO_PORT ?= 54330
TEST_PORT ?= 54331
BENCH_PORT ?= 54332
SUDO_FLAG := $(if $(filter 0,$(shell id -u)),,--sudo)

.PHONY: setup install demo psql stop test unit e2e bench clean

setup:
	@scripts/setup.sh

## make install: into the system's PostgreSQL 15, with every script in sql/
## (the frozen install scripts of earlier versions and the upgrade scripts).
install: setup
	cargo pgrx install --pg-config $(PG_CONFIG) $(SUDO_FLAG)
	install -m 644 sql/pg_migrate--*.sql $$($(PG_CONFIG) --sharedir)/extension/

## make demo: a throwaway cluster with the example migrations applied, running
## from its own installation under target/pg/demo (so make test cannot disturb it).
demo: setup
	@DEMO_PORT=$(DEMO_PORT) scripts/demo.sh

## make psql: connect to the demo cluster.  make stop: stop it.
psql:
	@scripts/cluster.sh psql demo -d app

stop:
	@scripts/cluster.sh stop demo

## make unit: the pure cores' tests only (parser, graph, targets, guard rules,
## backfill planner): seconds, no PostgreSQL needed. make test runs them too.
## guard::tests are #[pg_test]s (SQL text through the server's parser): make test runs them.
unit:
	cargo test --lib -- revisions:: guard:: backfill:: format:: pg_report:: autogen:: --skip guard::tests::

## make test: unit + #[pg_test] tests, then end-to-end tests on a scratch cluster.
test: setup
	@TEST_PORT=$(TEST_PORT) PG_CONFIG=$(PG_CONFIG) scripts/test.sh

## make bench: side-by-side ratios (not a test: nothing here asserts a time).
bench: setup
	@BENCH_PORT=$(BENCH_PORT) PG_CONFIG=$(PG_CONFIG) scripts/bench.sh

clean:
	-@scripts/cluster.sh stop demo
	-@scripts/cluster.sh stop test
	cargo clean
