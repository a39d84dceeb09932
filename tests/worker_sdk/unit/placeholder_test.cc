// Replaced by the SDK unit tests.
#include "gtest/gtest.h"
TEST(WorkerSdkUnit, Builds) { SUCCEED(); }
