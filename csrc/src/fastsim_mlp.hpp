#pragma once
// The fast simulation's small networks (plugins/fastsim_gan/model.py, NumpyGenerator): float32 MLPs
// evaluated over blocks of crossings, products with the widest instruction set of this CPU
// (portable, AVX2/FMA or AVX-512, chosen at run time).
#include <cstdint>

namespace trackcore::fastsim {

// Crossings per block: the matrix products run over a block, so weights stay in L1 and each
// weight row is used for many crossings.
constexpr int kBlock = 64;
constexpr int kMaxWidth = 256;  // widest layer the block buffers hold (checked by the binding)

// One layer: row-major (inputs x outputs) float32 weights and its bias.
struct Layer {
    const float* w;
    const float* b;
    int n_in, n_out;
};

// The MLP `layers` on `rows` (<= kBlock) rows of `a`, Leaky-ReLU(leak) between layers; the first
// layer's outputs get `first_bias[r]` added on row r (may be null). a and b (kBlock * kMaxWidth
// floats each) are swapped between layers; returns the one that holds the result.
float* mlp(const Layer* layers, int n_layers, float* a, float* b, int rows, float leak,
           const float* const* first_bias);

// exp(x) in place for x <= 0 (float32, a float ulp or two; the class sampling's softmax).
void exp_nonpositive(float* v, int count);

// One dense layer over `rows` rows with the products of instruction set `isa` (0 portable, 1 AVX2/FMA,
// 2 AVX-512; std::invalid_argument beyond what this CPU has): out = in W + bias (+ row_bias rows),
// then LeakyReLU(leak) when `act`. The kernels' own layers, exposed so tests can check every path.
int dense_isa_available();
void dense_rows(int isa, const float* in, std::int64_t rows, const float* weights, const float* bias, int n_in,
                int n_out, const float* row_bias, bool act, float leak, float* out);

}  // namespace trackcore::fastsim
