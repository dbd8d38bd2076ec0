// K-quant kernels (neon). Work in progress: registration hook only.
#include "kernels/kernel_table.h"

namespace muse::kernels {

void register_kquants_neon(KernelTable& /*t*/) {}

}  // namespace muse::kernels
