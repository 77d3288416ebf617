// Batched 2-D Kalman measurement update, one track per thread (trackcore/kalman_math.hpp, the same
// math as the compiled CKF's kalman_update).
#include "trackcore/kalman_math.hpp"

// params (N, 5) and cov (N, 25) are updated in place unless dry_run; meas and var (N, 2) in mm, mm^2.
extern "C" __global__ void tc_kalman_update(long long n, double* params, double* cov, const double* meas,
                                            const double* var, int dry_run, double* chi2) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    chi2[i] = trackcore::kalman_update_2d(params + 5 * i, cov + 25 * i, meas[2 * i], meas[2 * i + 1], var[2 * i],
                                          var[2 * i + 1], dry_run != 0);
}
