# federation: slow crash/race tests, not part of `make test`.
#   make test-fed-crash   kill -9 of train (during upload) and aggregate (during write) at
#                         >= 20 random points; verify --all, LATEST complete, re-runs, gc
#                         (XFFL_CRASH_POINTS=N for more)
.PHONY: test-fed-crash
test-fed-crash: all
	@XFFL_BUILD=$(BUILD) XFFL_SLOW=1 bash tests/it/test-fed-crash.sh
