#pragma once
// Functions shared by the C++ core and the CUDA kernels carry TC_HD so one definition serves both.
// TC_HDI: the same for larger functions, left to the compiler to inline or not.
#if defined(__CUDACC__)
#define TC_HD __host__ __device__ __forceinline__
#define TC_HDI __host__ __device__ inline
#else
#define TC_HD inline
#define TC_HDI inline
#endif
