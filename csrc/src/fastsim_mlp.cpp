// The fast simulation's small networks (plugins/fastsim_gan): dense layers over blocks of crossings
// with run-time choice of portable, AVX2/FMA or AVX-512 products; see fastsim_mlp.hpp.
#include "fastsim_mlp.hpp"

#include <algorithm>
#include <cmath>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdexcept>
#include <string>

#include "no_fp_contract.hpp"  // after the other headers: it applies to what follows

namespace trackcore::fastsim {
namespace {

// Columns first .. first + count of the (n_in, n_out) row-major weights, each as a contiguous row of
// wt, for dot products along the inputs (layers too narrow for a vector of outputs).
void transposed_columns(const float* weights, int n_in, int n_out, int first, int count, float* wt) {
    for (int k = 0; k < count; ++k)
        for (int i = 0; i < n_in; ++i) wt[k * n_in + i] = weights[i * n_out + first + k];
}

// out[r][o] = b[o] + sum_i in[r][i] w[i][o] for the rows of a block: the portable version, and the
// AVX2/FMA one (chosen at run time) that keeps 4 rows x 16 outputs in registers, so the products of
// a weight row go to 8 independent sums instead of one chain through memory.
void dense_portable(const float* __restrict in, int rows, const float* __restrict weights,
                    const float* __restrict bias, int n_in, int n_out, float* __restrict out) {
    for (int r = 0; r < rows; ++r) {
        float* __restrict o = out + r * n_out;
        const float* __restrict x = in + r * n_in;
        for (int k = 0; k < n_out; ++k) o[k] = bias[k];
        for (int i = 0; i < n_in; ++i) {
            const float xi = x[i];
            const float* __restrict w = weights + i * n_out;
            for (int k = 0; k < n_out; ++k) o[k] += xi * w[k];
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
// R rows x C groups of 8 outputs from column c: R*C sums in registers; each step of the inputs
// loads C weight vectors and R inputs for R*C fused multiply-adds.
template <int R, int C>
__attribute__((target("avx2,fma"), always_inline)) inline void dense_block(const float* __restrict x, int n_in,
                                                                           const float* __restrict weights, int n_out,
                                                                           const float* __restrict bias, int c,
                                                                           float* __restrict out) {
    __m256 acc[R][C];
#pragma GCC unroll 8
    for (int q = 0; q < R; ++q)
#pragma GCC unroll 4
        for (int g = 0; g < C; ++g) acc[q][g] = _mm256_loadu_ps(bias + c + 8 * g);
    const float* __restrict w_row = weights + c;
    for (int i = 0; i < n_in; ++i, w_row += n_out) {
        __m256 w[C];
#pragma GCC unroll 4
        for (int g = 0; g < C; ++g) w[g] = _mm256_loadu_ps(w_row + 8 * g);
#pragma GCC unroll 8
        for (int q = 0; q < R; ++q) {
            const __m256 xi = _mm256_broadcast_ss(x + q * n_in + i);
#pragma GCC unroll 4
            for (int g = 0; g < C; ++g) acc[q][g] = _mm256_fmadd_ps(xi, w[g], acc[q][g]);
        }
    }
#pragma GCC unroll 8
    for (int q = 0; q < R; ++q)
#pragma GCC unroll 4
        for (int g = 0; g < C; ++g) _mm256_storeu_ps(out + q * n_out + c + 8 * g, acc[q][g]);
}

__attribute__((target("avx2,fma"))) void dense_avx2(const float* __restrict in, int rows,
                                                    const float* __restrict weights, const float* __restrict bias,
                                                    int n_in, int n_out, float* __restrict out) {
    const int vec_out = n_out / 8 * 8;
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        int c = 0;
        for (; c + 16 <= vec_out; c += 16)
            dense_block<4, 2>(in + r * n_in, n_in, weights, n_out, bias, c, out + r * n_out);
        if (c < vec_out) dense_block<4, 1>(in + r * n_in, n_in, weights, n_out, bias, c, out + r * n_out);
    }
    for (; r < rows; ++r)
        for (int c = 0; c < vec_out; c += 8)
            dense_block<1, 1>(in + r * n_in, n_in, weights, n_out, bias, c, out + r * n_out);
    if (vec_out == n_out) return;
    // Outputs past the last multiple of 8 (the generator's 3): dot products along the inputs against
    // a transposed copy of their weight columns, instead of sums chained through memory.
    const int tail = n_out - vec_out, vec_in = n_in / 8 * 8;
    float wt[8 * kMaxWidth];
    transposed_columns(weights, n_in, n_out, vec_out, tail, wt);
    for (int r = 0; r < rows; ++r) {
        const float* x = in + r * n_in;
        for (int k = 0; k < tail; ++k) {
            const float* w = wt + k * n_in;
            __m256 acc = _mm256_setzero_ps();
            for (int i = 0; i < vec_in; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc);
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            h = _mm_hadd_ps(h, h);
            h = _mm_hadd_ps(h, h);
            float sum = _mm_cvtss_f32(h);
            for (int i = vec_in; i < n_in; ++i) sum += x[i] * w[i];
            out[r * n_out + vec_out + k] = bias[vec_out + k] + sum;
        }
    }
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
// The AVX-512 version (full-width FMA units on recent cores: twice the AVX2 rate): R rows x C groups of
// 16 outputs in registers, the last group masked when the width is not a multiple of 16, with the
// epilogue (per-row added bias, LeakyReLU) applied in registers before the one store.
template <int R, int C>
__attribute__((target("avx512f"), always_inline)) inline void dense512_block(
    const float* __restrict x, int n_in, const float* __restrict weights, int n_out, const float* __restrict bias,
    int c, __mmask16 last, const float* const* row_bias, bool act, float leak, float* __restrict out) {
    // Plain locals (not arrays indexed through a mask table): GCC then keeps every sum in a register.
    __m512 acc[R][C];
#pragma GCC unroll 4
    for (int g = 0; g < C; ++g) {
        const __m512 b = _mm512_maskz_loadu_ps(g == C - 1 ? last : __mmask16(0xFFFF), bias + c + 16 * g);
#pragma GCC unroll 8
        for (int q = 0; q < R; ++q) acc[q][g] = b;
    }
    const float* __restrict w_row = weights + c;
    for (int i = 0; i < n_in; ++i, w_row += n_out) {
        __m512 w[C];
#pragma GCC unroll 4
        for (int g = 0; g < C - 1; ++g) w[g] = _mm512_loadu_ps(w_row + 16 * g);
        w[C - 1] = _mm512_maskz_loadu_ps(last, w_row + 16 * (C - 1));
#pragma GCC unroll 8
        for (int q = 0; q < R; ++q) {
            const __m512 xi = _mm512_set1_ps(x[q * n_in + i]);
#pragma GCC unroll 4
            for (int g = 0; g < C; ++g) acc[q][g] = _mm512_fmadd_ps(xi, w[g], acc[q][g]);
        }
    }
    const __m512 slope = _mm512_set1_ps(leak);
#pragma GCC unroll 8
    for (int q = 0; q < R; ++q)
#pragma GCC unroll 4
        for (int g = 0; g < C; ++g) {
            const __mmask16 m = g == C - 1 ? last : __mmask16(0xFFFF);
            __m512 v = acc[q][g];
            if (row_bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, row_bias[q] + c + 16 * g));
            if (act) v = _mm512_max_ps(v, _mm512_mul_ps(v, slope));
            _mm512_mask_storeu_ps(out + q * n_out + c + 16 * g, m, v);
        }
}

template <int R>
__attribute__((target("avx512f"))) void dense512_rows(const float* x, int n_in, const float* weights, int n_out,
                                                      const float* bias, const float* const* row_bias, bool act,
                                                      float leak, float* out) {
    const int groups = (n_out + 15) / 16;
    const __mmask16 last = n_out % 16 ? __mmask16((1u << (n_out % 16)) - 1) : __mmask16(0xFFFF);
    int g = 0;
    for (; g + 4 < groups; g += 4)
        dense512_block<R, 4>(x, n_in, weights, n_out, bias, 16 * g, 0xFFFF, row_bias, act, leak, out);
    switch (groups - g) {
        case 4: dense512_block<R, 4>(x, n_in, weights, n_out, bias, 16 * g, last, row_bias, act, leak, out); break;
        case 3: dense512_block<R, 3>(x, n_in, weights, n_out, bias, 16 * g, last, row_bias, act, leak, out); break;
        case 2: dense512_block<R, 2>(x, n_in, weights, n_out, bias, 16 * g, last, row_bias, act, leak, out); break;
        default: dense512_block<R, 1>(x, n_in, weights, n_out, bias, 16 * g, last, row_bias, act, leak, out); break;
    }
}

// Layers narrower than 8 outputs (the generator's 3): dot products along the inputs against a
// transposed copy of the weight columns; the epilogue as above.
__attribute__((target("avx512f"))) void dense512_narrow(const float* __restrict in, int rows,
                                                        const float* __restrict weights, const float* __restrict bias,
                                                        int n_in, int n_out, const float* const* row_bias, bool act,
                                                        float leak, float* __restrict out) {
    float wt[8 * kMaxWidth];
    transposed_columns(weights, n_in, n_out, 0, n_out, wt);
    const int vec_in = n_in / 16 * 16;
    const __mmask16 tail = __mmask16((1u << (n_in - vec_in)) - 1);
    for (int r = 0; r < rows; ++r) {
        const float* x = in + r * n_in;
        for (int k = 0; k < n_out; ++k) {
            const float* w = wt + k * n_in;
            __m512 acc = _mm512_setzero_ps();
            for (int i = 0; i < vec_in; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(w + i), acc);
            if (tail) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + vec_in), _mm512_maskz_loadu_ps(tail, w + vec_in), acc);
            float v = bias[k] + _mm512_reduce_add_ps(acc);
            if (row_bias) v += row_bias[r][k];
            if (act) v = std::max(v, leak * v);
            out[r * n_out + k] = v;
        }
    }
}

__attribute__((target("avx512f"))) void dense_avx512(const float* in, int rows, const float* weights,
                                                     const float* bias, int n_in, int n_out,
                                                     const float* const* row_bias, bool act, float leak, float* out) {
    if (n_out < 8) return dense512_narrow(in, rows, weights, bias, n_in, n_out, row_bias, act, leak, out);
    int r = 0;
    for (; r + 4 <= rows; r += 4)
        dense512_rows<4>(in + r * n_in, n_in, weights, n_out, bias, row_bias ? row_bias + r : nullptr, act, leak,
                         out + r * n_out);
    for (; r < rows; ++r)
        dense512_rows<1>(in + r * n_in, n_in, weights, n_out, bias, row_bias ? row_bias + r : nullptr, act, leak,
                         out + r * n_out);
}
#endif

void leaky(float* h, int count, float leak) {
    for (int k = 0; k < count; ++k) h[k] = std::max(h[k], leak * h[k]);
}

// The widest instruction set of this CPU that the products use: 2 AVX-512, 1 AVX2/FMA, 0 portable.
int best_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
    static const int isa = __builtin_cpu_supports("avx512f")                                      ? 2
                           : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1
                                                                                              : 0;
    return isa;
#else
    return 0;
#endif
}

void dense_isa(int isa, const float* in, int rows, const float* weights, const float* bias, int n_in, int n_out,
               const float* const* row_bias, bool act, float leak, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (isa >= 2 && n_out <= kMaxWidth)
        return dense_avx512(in, rows, weights, bias, n_in, n_out, row_bias, act, leak, out);
    if (isa >= 1)
        dense_avx2(in, rows, weights, bias, n_in, n_out, out);
    else
#endif
        dense_portable(in, rows, weights, bias, n_in, n_out, out);
    if (row_bias)
        for (int r = 0; r < rows; ++r) {
            float* __restrict o = out + r * n_out;
            const float* __restrict add = row_bias[r];
            for (int k = 0; k < n_out; ++k) o[k] += add[k];
        }
    if (act) leaky(out, rows * n_out, leak);
}

// out = in W + bias (+ row_bias[r] on row r when given), then LeakyReLU when `act`.
void dense(const float* in, int rows, const float* weights, const float* bias, int n_in, int n_out,
           const float* const* row_bias, bool act, float leak, float* out) {
    dense_isa(best_isa(), in, rows, weights, bias, n_in, n_out, row_bias, act, leak, out);
}

// exp(x) for x <= 0 in float32 (relative error ~2e-7, a float ulp or two): 2^n times a degree-7
// polynomial on |r| <= ln2/2, eight values at a time with AVX2 (std::exp is a library call per
// value; the softmax of the class sampling needs K of them per crossing).
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) void exp_nonpositive_avx2(float* v, int count) {
    const __m256 lo = _mm256_set1_ps(-87.0f), log2e = _mm256_set1_ps(1.44269504f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693145752f), ln2_lo = _mm256_set1_ps(1.42860677e-6f);
    const float coef[8] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
    int k = 0;
    for (; k + 8 <= count; k += 8) {
        const __m256 x = _mm256_max_ps(_mm256_loadu_ps(v + k), lo);
        const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256 r = _mm256_fnmadd_ps(n, ln2_lo, _mm256_fnmadd_ps(n, ln2_hi, x));
        __m256 p = _mm256_set1_ps(coef[0]);
        for (int c = 1; c < 8; ++c) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(coef[c]));
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        _mm256_storeu_ps(v + k, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
    }
    for (; k < count; ++k) v[k] = std::exp(v[k]);
}
#endif

}  // namespace

void exp_nonpositive(float* v, int count) {
#if defined(__x86_64__) && defined(__GNUC__)
    static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2) return exp_nonpositive_avx2(v, count);
#endif
    for (int k = 0; k < count; ++k) v[k] = std::exp(v[k]);
}

// The MLP `layers` on a block; the first layer's outputs get `first_bias` rows added (may be null).
// Returns the buffer that holds the result.
float* mlp(const Layer* layers, int n_layers, float* a, float* b, int rows, float leak,
           const float* const* first_bias) {
    float *in = a, *out = b;
    for (int l = 0; l < n_layers; ++l) {
        dense(in, rows, layers[l].w, layers[l].b, layers[l].n_in, layers[l].n_out, l == 0 ? first_bias : nullptr,
              l < n_layers - 1, leak, out);
        std::swap(in, out);
    }
    return in;
}

int dense_isa_available() { return best_isa(); }

void dense_rows(int isa, const float* in, std::int64_t rows, const float* weights, const float* bias, int n_in,
                int n_out, const float* row_bias, bool act, float leak, float* out) {
    if (isa > best_isa()) throw std::invalid_argument("this CPU lacks the instruction set " + std::to_string(isa));
    if (n_in > kMaxWidth || n_out > kMaxWidth) throw std::invalid_argument("layer wider than 256");
    const float* rb[kBlock];
    for (std::int64_t start = 0; start < rows; start += kBlock) {
        const int r = static_cast<int>(std::min<std::int64_t>(kBlock, rows - start));
        if (row_bias)
            for (int q = 0; q < r; ++q) rb[q] = row_bias + (start + q) * n_out;
        dense_isa(isa, in + start * n_in, r, weights, bias, n_in, n_out, row_bias ? rb : nullptr, act, leak,
                  out + start * n_out);
    }
}

}  // namespace trackcore::fastsim
