#include "storage/clock.h"

namespace kole::storage {

Clock* DefaultClock() {
  static SystemClock clock;
  return &clock;
}

}  // namespace kole::storage
