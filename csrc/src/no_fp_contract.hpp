#pragma once
// Include, after its other headers, in a source file whose scalar arithmetic must match a numpy
// twin operation for operation: a fused multiply-add rounds once where numpy rounds twice, so keep
// them apart in what follows (explicit FMA intrinsics are unaffected).
#pragma GCC optimize("fp-contract=off")
#ifdef __clang__
#pragma clang fp contract(off)
#endif
