#pragma once
// Functions shared by the C++ core and the CUDA kernels carry TC_HD so one definition serves both.
// TC_HDI: the same for larger functions, left to the compiler to inline or not. TC_HDN: large
// functions called from several places, kept out of line on the device (inlining each call site
// multiplied the GPU CKF's code and its compile time); plain inline functions on the host.
#if defined(__CUDACC__)
#define TC_HD __host__ __device__ __forceinline__
#define TC_HDI __host__ __device__ inline
#define TC_HDN __host__ __device__ __noinline__
#else
#define TC_HD inline
#define TC_HDI inline
#define TC_HDN inline
#endif
