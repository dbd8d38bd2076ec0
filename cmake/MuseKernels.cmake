# Run-time ISA dispatch: each kernel file for a target ISA is compiled with that
# ISA's flags only; the rest of the code stays baseline x86-64 (or armv8) and picks
# the kernel table at run time from the CPU's features (src/kernels/cpu_features).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  set(MUSE_ARCH_X86 ON)
  set(MUSE_FLAGS_AVX2 -mavx2 -mfma -mf16c -mbmi2)
  set(MUSE_FLAGS_AVX512 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c -mbmi2)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(MUSE_ARCH_ARM ON)
endif()

# muse_isa_sources(<target> <isa> <flags...> SOURCES <files...>)
function(muse_isa_sources target isa)
  cmake_parse_arguments(ARG "" "" "FLAGS;SOURCES" ${ARGN})
  target_sources(${target} PRIVATE ${ARG_SOURCES})
  set_source_files_properties(${ARG_SOURCES} PROPERTIES COMPILE_OPTIONS "${ARG_FLAGS}")
endfunction()
