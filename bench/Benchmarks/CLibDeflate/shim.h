// libdeflate (Debian's libdeflate-dev 1.14), for the benchmarks only: a one-shot DEFLATE
// compared with zlib's streams on whole messages (issue 16 asks whether it measures faster).
#include <libdeflate.h>
