# The two commands a newcomer needs: `make generate` and `make test`.
PROMPT ?= The meaning of life is
SWIFT_TEST_FLAGS = -c release -Xswiftc -enable-testing --disable-swift-testing

.PHONY: bootstrap build generate test
bootstrap:
	@scripts/bootstrap

build: bootstrap
	swift build -c release

generate: bootstrap
	swift run -c release dsv2 generate --prompt "$(PROMPT)"

test: bootstrap
	swift build -c release --product dsv2
	swift test $(SWIFT_TEST_FLAGS)
