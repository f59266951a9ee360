package provider_test

import (
	"testing"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/provider"
)

func BenchmarkTwilioSendSMS(b *testing.B) {
	f := fakes.NewTwilio()
	defer f.Close()
	tw := provider.NewTwilio(twilioFor(f))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := tw.SendSMS(b.Context(), provider.SMS{To: testPhone, Body: testBody}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkResendSendEmail(b *testing.B) {
	f := fakes.NewResend()
	defer f.Close()
	rs := provider.NewResend(resendFor(f))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rs.SendEmail(b.Context(), testMail("")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
