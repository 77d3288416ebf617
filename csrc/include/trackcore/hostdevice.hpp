#pragma once
// Functions shared by the C++ core and the CUDA kernels carry TC_HD so one definition serves both.
#if defined(__CUDACC__)
#define TC_HD __host__ __device__ __forceinline__
#else
#define TC_HD inline
#endif
