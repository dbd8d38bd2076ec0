// K-quant kernels (avx512). Work in progress: registration hook only.
#include "kernels/kernel_table.h"

namespace muse::kernels {

void register_kquants_avx512(KernelTable& /*t*/) {}

}  // namespace muse::kernels
