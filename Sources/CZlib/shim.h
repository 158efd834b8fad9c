// System zlib (Debian's zlib1g-dev) for the permessage-deflate layer (WebSocketCompression).
// Swift imports zlib.h directly except its function-like macros: deflateInit2 and inflateInit2
// expand to deflateInit2_/inflateInit2_ with ZLIB_VERSION and sizeof(z_stream), which zlib
// checks against the library it runs with. These wrappers do that expansion in C.
#ifndef MYRIAD_CZLIB_SHIM_H
#define MYRIAD_CZLIB_SHIM_H

#include <zlib.h>

static inline int czlib_deflateInit2(z_streamp stream, int level, int windowBits, int memLevel, int strategy) {
    return deflateInit2(stream, level, Z_DEFLATED, windowBits, memLevel, strategy);
}

static inline int czlib_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}

#endif
