package bench

import (
	"testing"

	"github.com/errandhq/errand/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
