package storetest_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/billing/billing/internal/storetest"
)

func TestMain(m *testing.M) {
	code := storetest.Run(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

var databaseName = regexp.MustCompile(`^[a-zA-Z0-9_]{1,63}$`)

func TestDatabase(t *testing.T) {
	t.Parallel()
	a, b := storetest.Database(t), storetest.Database(t)
	require.Regexp(t, databaseName, a)
	require.True(t, strings.HasPrefix(a, "TestDatabase_"), a)
	require.NotEqual(t, a, b)

	t.Run("a long name/with odd characters: é.$ "+strings.Repeat("x", 80), func(t *testing.T) {
		t.Parallel()
		require.Regexp(t, databaseName, storetest.Database(t))
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	uri := storetest.New(t)
	require.NotEmpty(t, uri)
	require.Equal(t, uri, storetest.New(t), "one server per test binary")
}
