#include <seccomp.h>

// Function-like macros Swift cannot import.
static inline uint32_t pv_scmp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
static inline uint32_t pv_scmp_act_trace(uint16_t msg) { return SCMP_ACT_TRACE(msg); }
