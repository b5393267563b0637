# S3 test matrix and the slow S3 tests (issue 17), for .ci/run; the quick S3 tests are in
# make test (tests/it/test-s3*.sh, test-fed-s3.sh). See tests/s3/README.md.
#   make test-s3-matrix      test-s3 + test-fed-s3 on both backends (XFFL_S3_SIGNATURE=v2|v4)
#                            over http and https (stunnel4, a test CA); v4 behind the
#                            V4-verifying proxy (a few minutes)
#   make test-faults-matrix  make test-faults on the same four cells (~10 minutes)
#   make test-s3-big         a 6 GiB object up as a multipart upload (V4) and back
#                            byte-identical; an upload killed midway leaves no object (~5 min,
#                            ~20 GiB free under TMPDIR)
.PHONY: test-s3-matrix test-faults-matrix test-s3-big
test-s3-matrix: all
	@XFFL_BUILD=$(BUILD) bash tests/s3/matrix.sh --suites s3,fed
test-faults-matrix: all
	@XFFL_BUILD=$(BUILD) bash tests/s3/matrix.sh --suites faults
test-s3-big: all
	@XFFL_BUILD=$(BUILD) bash tests/s3/test-big.sh
