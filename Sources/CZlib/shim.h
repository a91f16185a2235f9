#include <zlib.h>

// deflateInit and inflateInit are macros (they pass zlib's version and struct size), which Swift cannot call.
static inline int podvisor_deflate_init(z_streamp stream, int level) { return deflateInit(stream, level); }
static inline int podvisor_inflate_init(z_streamp stream) { return inflateInit(stream); }
