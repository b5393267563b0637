# pipelines: Slurm and cron chains of rounds, tested on a one-node Slurm and a cron loop.
#   make test-slurm   one-node Slurm from Debian in a temp dir (root): xffl-step requeue and
#                     deadline, a two-round federation of two facilities through xffl submit,
#                     a scancel'ed job recovered by the next submission, a federation with a 2-rank
#                     facility (srun --mpi=pmix) and a kill -9 of one rank
#   make test-cron    the cron wrapper fired repeatedly and concurrently: three rounds, no
#                     duplicate attempt, no exit other than 0/75
# Both print PASS/FAIL lines and end with "N passed, N failed".
.PHONY: test-slurm test-cron install-pipelines
test-slurm: deps
	@$(MAKE) --no-print-directory all
	@XFFL_BUILD=$(BUILD) tests/slurm/run.sh

test-cron: deps
	@$(MAKE) --no-print-directory all
	@XFFL_BUILD=$(BUILD) tests/cron/run.sh

# The templates and wrappers beside an installed binary (xffl submit finds them there).
install: install-pipelines
install-pipelines:
	install -d $(DESTDIR)$(PREFIX)/share/xffl/slurm $(DESTDIR)$(PREFIX)/share/xffl/cron
	install -m 755 pipelines/slurm/xffl-step pipelines/slurm/train.sbatch pipelines/slurm/aggregate.sbatch \
	    $(DESTDIR)$(PREFIX)/share/xffl/slurm/
	install -m 644 pipelines/slurm/env.sh $(DESTDIR)$(PREFIX)/share/xffl/slurm/
	install -m 755 pipelines/cron/xffl-cron $(DESTDIR)$(PREFIX)/share/xffl/cron/
	install -m 644 pipelines/cron/crontab.example $(DESTDIR)$(PREFIX)/share/xffl/cron/
