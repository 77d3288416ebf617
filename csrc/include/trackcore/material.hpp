#pragma once
// Material effects in silicon-equivalent material: Highland multiple scattering, Bethe-Bloch mean
// energy loss (PDG 2024, Eq. 34.5, with Sternheimer density correction) and a Landau-like energy
// deposit (Moyal approximation) for digitisation. Units: GeV, mm.
#include <cmath>

#include "trackcore/hostdevice.hpp"
#include "trackcore/rng.hpp"

namespace trackcore {

namespace silicon {
constexpr double Z_over_A = 0.49848;      // mol/g
constexpr double density = 2.329;         // g/cm^3
constexpr double X0_mm = 93.70;           // radiation length
constexpr double I_GeV = 173e-9;          // mean excitation energy
// Sternheimer density-effect parameters (PDG atomic & nuclear properties, silicon).
constexpr double sx0 = 0.2015, sx1 = 2.8716, sa = 0.1492, sk = 3.2546, sC = 4.4355, sdelta0 = 0.14;
}  // namespace silicon

constexpr double electron_mass = 0.51099895e-3;  // GeV
constexpr double K_bethe = 0.307075e-3;          // GeV cm^2 / mol

TC_HD double density_effect_si(double betagamma) {
    using namespace silicon;
    const double x = std::log10(betagamma);
    if (x >= sx1) return 2.0 * 2.302585093 * x - sC;
    if (x >= sx0) return 2.0 * 2.302585093 * x - sC + sa * std::pow(sx1 - x, sk);
    return sdelta0 * std::pow(10.0, 2.0 * (x - sx0));
}

// Mean energy loss per unit length, GeV/mm, for a particle of momentum p and mass m (charge 1).
TC_HD double bethe_bloch_si(double p, double mass) {
    using namespace silicon;
    const double bg = p / mass, g = std::sqrt(1.0 + bg * bg), b2 = bg * bg / (g * g);
    const double me_ratio = electron_mass / mass;
    const double wmax = 2.0 * electron_mass * bg * bg / (1.0 + 2.0 * g * me_ratio + me_ratio * me_ratio);
    const double arg = 2.0 * electron_mass * bg * bg * wmax / (I_GeV * I_GeV);
    const double dedx_mass = K_bethe * Z_over_A / b2 * (0.5 * std::log(arg) - b2 - 0.5 * density_effect_si(bg));
    // Below beta*gamma ~ 0.013 the formula (valid down to ~0.05) turns negative: never gain energy.
    return (dedx_mass > 0.0 ? dedx_mass : 0.0) * density * 0.1;  // GeV cm^2/g * g/cm^3 -> GeV/cm -> GeV/mm
}

// Highland width (radians) of the projected scattering angle after a path of x_over_X0.
TC_HD double highland_theta0(double p, double mass, double x_over_X0) {
    if (x_over_X0 <= 0) return 0.0;
    const double e = std::sqrt(p * p + mass * mass), beta = p / e;
    return 0.0136 / (beta * p) * std::sqrt(x_over_X0) * (1.0 + 0.038 * std::log(x_over_X0 / (beta * beta)));
}

// Turn dir by two independent Gaussian angles of width theta0 about axes perpendicular to it.
TC_HD void scatter_direction(double* dir, double theta0, Stream& rng) {
    if (theta0 <= 0) return;
    // Orthonormal axes u, v perpendicular to dir.
    double u[3];
    if (std::fabs(dir[2]) < 0.9) {
        const double n = std::sqrt(dir[0] * dir[0] + dir[1] * dir[1]);
        u[0] = -dir[1] / n; u[1] = dir[0] / n; u[2] = 0;
    } else {
        const double n = std::sqrt(dir[1] * dir[1] + dir[2] * dir[2]);
        u[0] = 0; u[1] = dir[2] / n; u[2] = -dir[1] / n;
    }
    const double v[3] = {dir[1] * u[2] - dir[2] * u[1], dir[2] * u[0] - dir[0] * u[2], dir[0] * u[1] - dir[1] * u[0]};
    const double a = theta0 * rng.normal(), b = theta0 * rng.normal();
    double nrm = 0;
    for (int i = 0; i < 3; ++i) {
        dir[i] = dir[i] + std::tan(a) * u[i] + std::tan(b) * v[i];
        nrm += dir[i] * dir[i];
    }
    nrm = 1.0 / std::sqrt(nrm);
    for (int i = 0; i < 3; ++i) dir[i] *= nrm;
}

// Energy deposited (GeV) in a silicon path of length len_mm: Landau most-probable value plus a
// Moyal-distributed fluctuation of scale xi (X = -ln(G^2), G standard normal, is Moyal).
TC_HD double landau_deposit_si(double p, double mass, double len_mm, Stream& rng) {
    using namespace silicon;
    const double bg = p / mass, g = std::sqrt(1.0 + bg * bg), b2 = bg * bg / (g * g);
    const double xi = 0.5 * K_bethe * Z_over_A * density * (len_mm * 0.1) / b2;  // GeV
    const double mpv = xi * (std::log(2.0 * electron_mass * bg * bg / I_GeV) + std::log(xi / I_GeV) + 0.2 - b2 -
                             density_effect_si(bg));
    const double gn = rng.normal();
    const double moyal = -std::log(gn * gn + 1e-300);
    const double dep = mpv + xi * moyal;
    return dep > 0 ? dep : 0.0;
}

}  // namespace trackcore
