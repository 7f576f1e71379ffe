// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./lib/Test.sol";
import {TestToken} from "../src/TestToken.sol";

contract TestTokenTest is Test {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    address internal constant ALICE = address(0xA1);
    address internal constant BOB = address(0xB0B);
    TestToken internal token;

    function setUp() public {
        token = new TestToken();
    }

    function test_Metadata() public view {
        assertEq(token.decimals(), 18, "decimals");
        assertTrue(keccak256(bytes(token.name())) == keccak256("Tributary Test Token"), "name");
        assertTrue(keccak256(bytes(token.symbol())) == keccak256("TRIBT"), "symbol");
        assertEq(token.minter(), address(this), "minter is the deployer");
    }

    function test_Mint_OnlyDeployer() public {
        vm.expectEmit(true, true, true, true, address(token));
        emit Transfer(address(0), ALICE, 5 ether);
        token.mint(ALICE, 5 ether);
        assertEq(token.balanceOf(ALICE), 5 ether, "balance");
        assertEq(token.totalSupply(), 5 ether, "supply");

        vm.prank(ALICE);
        vm.expectRevert(TestToken.NotMinter.selector);
        token.mint(ALICE, 1);
    }

    function test_Transfer() public {
        token.mint(ALICE, 5 ether);
        vm.expectEmit(true, true, true, true, address(token));
        emit Transfer(ALICE, BOB, 2 ether);
        vm.prank(ALICE);
        assertTrue(token.transfer(BOB, 2 ether), "returns true");
        assertEq(token.balanceOf(ALICE), 3 ether, "alice");
        assertEq(token.balanceOf(BOB), 2 ether, "bob");

        vm.prank(ALICE);
        vm.expectRevert(abi.encodeWithSelector(TestToken.InsufficientBalance.selector, 3 ether, 4 ether));
        token.transfer(BOB, 4 ether);
    }

    function test_ApproveAndTransferFrom() public {
        token.mint(ALICE, 5 ether);
        vm.expectEmit(true, true, true, true, address(token));
        emit Approval(ALICE, BOB, 2 ether);
        vm.prank(ALICE);
        assertTrue(token.approve(BOB, 2 ether), "approve returns true");
        assertEq(token.allowance(ALICE, BOB), 2 ether, "allowance");

        vm.prank(BOB);
        assertTrue(token.transferFrom(ALICE, BOB, 1.5 ether), "transferFrom returns true");
        assertEq(token.allowance(ALICE, BOB), 0.5 ether, "allowance spent");
        assertEq(token.balanceOf(BOB), 1.5 ether, "bob");

        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(TestToken.InsufficientAllowance.selector, 0.5 ether, 1 ether));
        token.transferFrom(ALICE, BOB, 1 ether);
    }

    function test_UnlimitedAllowanceIsNotSpent() public {
        token.mint(ALICE, 5 ether);
        vm.prank(ALICE);
        token.approve(BOB, type(uint256).max);
        vm.prank(BOB);
        token.transferFrom(ALICE, BOB, 5 ether);
        assertEq(token.allowance(ALICE, BOB), type(uint256).max, "still unlimited");
    }
}
