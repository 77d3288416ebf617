#pragma once
// Magnetic fields for the compiled core: a constant Bz, or an axially symmetric (r, z) grid map
// with bilinear interpolation (zero outside the map). Tesla, mm.
#include <cmath>

#include "trackcore/hostdevice.hpp"

namespace trackcore {

struct FieldView {
    bool constant = true;
    double bz = 2.0;
    // Grid map: values at r = r0 + i*dr (i < nr), z = z0 + j*dz (j < nz), stored [i * nz + j].
    const double* br_grid = nullptr;
    const double* bz_grid = nullptr;
    double r0 = 0, dr = 1, z0 = 0, dz = 1;
    int nr = 0, nz = 0;

    TC_HD void operator()(const double* p, double* b) const {
        if (constant) { b[0] = 0; b[1] = 0; b[2] = bz; return; }
        const double r = std::sqrt(p[0] * p[0] + p[1] * p[1]);
        const double fi = (r - r0) / dr, fj = (p[2] - z0) / dz;
        if (!(fi >= 0 && fj >= 0 && fi <= nr - 1 && fj <= nz - 1)) { b[0] = b[1] = b[2] = 0; return; }
        int i = static_cast<int>(fi), j = static_cast<int>(fj);
        if (i >= nr - 1) i = nr - 2;
        if (j >= nz - 1) j = nz - 2;
        const double a = fi - i, c = fj - j;
        auto lerp = [&](const double* g) {
            return (1 - a) * (1 - c) * g[i * nz + j] + a * (1 - c) * g[(i + 1) * nz + j] +
                   (1 - a) * c * g[i * nz + j + 1] + a * c * g[(i + 1) * nz + j + 1];
        };
        const double brv = lerp(br_grid);
        b[2] = lerp(bz_grid);
        if (r > 0) { b[0] = brv * p[0] / r; b[1] = brv * p[1] / r; }
        else { b[0] = b[1] = 0; }
    }
};

}  // namespace trackcore
