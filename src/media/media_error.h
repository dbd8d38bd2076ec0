// Errors of media decoding. A media file that exceeds a configured limit (bytes,
// pixels, seconds) is a MediaTooLarge (the server answers 413); anything else
// wrong with it is a plain muse::Error (400).
#pragma once

#include "muse/error.h"

namespace muse::media {

class MediaTooLarge : public Error {
 public:
  using Error::Error;
};

}  // namespace muse::media
