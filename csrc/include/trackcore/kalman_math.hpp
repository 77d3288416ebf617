#pragma once
// The 2-D Kalman measurement update of bound parameters (loc0, loc1, phi, theta, q/p) with a 5x5
// row-major covariance, shared by host and device code. Same operations, in the same order, as
// kalman_update in csrc/src/kalman.cpp, so a switch of the C++ core to this header changes nothing.
#include "trackcore/hostdevice.hpp"
#include "trackcore/track_params.hpp"

namespace trackcore {

// Chi2 of measurement (mu, mv) with variances (var_u, var_v) mm^2 against p[0..1]; unless dry_run,
// p[5] and C[25] are updated in place. Returns 1e30 (and changes nothing) if the residual
// covariance is not positive definite.
// chi2 of a 2-D measurement (mu, mv) against a predicted state, without touching it: the same
// arithmetic as the first lines of kalman_update_2d (a candidate test needs no copy of the state).
TC_HD double kalman_chi2_2d(const double* p, const double* C, double mu, double mv, double var_u, double var_v) {
    const double r0 = mu - p[0], r1 = mv - p[1];
    const double s00 = C[0] + var_u, s01 = C[1], s11 = C[6] + var_v;
    const double det = s00 * s11 - s01 * s01;
    if (!(det > 0)) return 1e30;
    const double i00 = s11 / det, i01 = -s01 / det, i11 = s00 / det;
    return r0 * (i00 * r0 + i01 * r1) + r1 * (i01 * r0 + i11 * r1);
}

TC_HD double kalman_update_2d(double* p, double* C, double mu, double mv, double var_u, double var_v, bool dry_run) {
    const double r0 = mu - p[0], r1 = mv - p[1];
    const double s00 = C[0] + var_u, s01 = C[1], s11 = C[6] + var_v;
    const double det = s00 * s11 - s01 * s01;
    if (!(det > 0)) return 1e30;
    const double i00 = s11 / det, i01 = -s01 / det, i11 = s00 / det;
    const double chi2 = r0 * (i00 * r0 + i01 * r1) + r1 * (i01 * r0 + i11 * r1);
    if (dry_run) return chi2;
    // K = C H^T S^-1 (5x2); H selects loc0, loc1.
    double K[10];
    for (int i = 0; i < 5; ++i) {
        K[2 * i] = C[5 * i + 0] * i00 + C[5 * i + 1] * i01;
        K[2 * i + 1] = C[5 * i + 0] * i01 + C[5 * i + 1] * i11;
    }
    for (int i = 0; i < 5; ++i) p[i] += K[2 * i] * r0 + K[2 * i + 1] * r1;
    p[2] = wrap_phi(p[2]);
    double N[25];
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j) N[5 * i + j] = C[5 * i + j] - (K[2 * i] * C[j] + K[2 * i + 1] * C[5 + j]);
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < i; ++j) N[5 * i + j] = N[5 * j + i] = 0.5 * (N[5 * i + j] + N[5 * j + i]);
    for (int k = 0; k < 25; ++k) C[k] = N[k];
    return chi2;
}

}  // namespace trackcore
