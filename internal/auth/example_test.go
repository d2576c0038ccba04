package auth_test

import (
	"context"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/auth"
)

func ExampleVerifier_Verify() {
	// JWT_SECRET: at least 32 bytes (HS256 needs a 256-bit key).
	const secret = "local-development-secret-do-not-deploy"

	// At cold start: nothing is fetched yet.
	v, err := auth.NewVerifier(auth.Config{
		Secret:      secret,
		Issuer:      "https://login.example.com",
		GroupsClaim: "groups",
	})
	if err != nil {
		panic(err)
	}

	// A token as an identity provider would issue it.
	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":    "42",
		"iss":    "https://login.example.com",
		"exp":    time.Now().Add(time.Hour).Unix(),
		"groups": []string{"team:plant-3", "role:dispatcher"},
	}).SignedString([]byte(secret))

	// On $connect.
	query := map[string]string{"token": token}
	tok, _ := auth.TokenFromRequest(query, nil)
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println(id.UserID, id.Groups)

	_, err = v.Verify(context.Background(), "")
	fmt.Println(err)
	// Output:
	// 42 [team:plant-3 role:dispatcher]
	// missing token
}

func ExampleOriginPolicy_Check() {
	p, err := auth.ParseOrigins("https://app.example.com, http://localhost:5173") // ALLOWED_ORIGINS
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Check("https://app.example.com", false))
	fmt.Println(p.Check("https://evil.example", false))
	fmt.Println(p.Check("", false))
	fmt.Println(p.Check("", true)) // token in the Authorization header: not a browser
	// Output:
	// <nil>
	// origin "https://evil.example" not allowed
	// missing Origin header
	// <nil>
}
