// Keeps the SDK test target non-empty until its tests land.
#include "gtest/gtest.h"
TEST(WorkerSdk, Builds) { SUCCEED(); }
