# Cross-compiling for 64-bit ARM Linux with Debian's aarch64-linux-gnu toolchain:
#   cmake -S . -B build-arm -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-toolchain.cmake
# (the dependencies -- GoogleTest, nlohmann-json -- must then be available for
# arm64 too). scripts/check-neon does not need them: it checks the NEON kernels
# with the cross compiler directly and, when qemu-aarch64 is installed, runs the
# kernel tests under emulation.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Lets ctest (and gtest test discovery) run the binaries on an x86 host.
find_program(MUSE_QEMU_AARCH64 qemu-aarch64)
if(MUSE_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MUSE_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
