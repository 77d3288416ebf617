#pragma once
// Bumped whenever a binding changes shape; must equal EXPECTED_CORE_ABI in trackcore/_corelib.py.
#define TRACKCORE_CORE_ABI 1
