// K-quant kernels (avx2). Work in progress: registration hook only.
#include "kernels/kernel_table.h"

namespace muse::kernels {

void register_kquants_avx2(KernelTable& /*t*/) {}

}  // namespace muse::kernels
